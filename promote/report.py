"""The approval report: what an approver reads before `promote approve` instead of raw JSON.

Candidate vs. the current champion (newest other Approved version): metrics side by side against the
environment's promotion criteria, both ROC curves and the confusion matrices as images, the drift
baseline the version will be checked against, and its lineage. Written as HTML and Markdown that
reference the same PNG files, so it can be archived by Jenkins or attached to a change ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mlops_core.config import Environment
from mlops_core.session import Sessions
from promote.registry import Metrics, Registry, compare_datasets, dataset_snapshot, lineage, version_of

TEMPLATES = Path(__file__).parent / "templates"
METRIC_LABELS = {"auc": "AUC", "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1"}


def build_context(env: Environment, sessions: Sessions, version: int) -> dict:
    """Everything the report shows, as plain data (also what tests compare with the registry)."""
    registry = Registry(env, sessions, purpose=f"report-v{version}")
    candidate_info = lineage(env, sessions, version, registry=registry)
    candidate = registry.metrics(registry.describe(version))
    skipped: list = []
    champion_package = registry.champion(exclude_version=version, skipped=skipped)
    champion = registry.metrics(champion_package) if champion_package else None
    rows = []
    for name, label in METRIC_LABELS.items():
        ours = candidate.values.get(name)
        theirs = champion.values.get(name) if champion else None
        delta = ours - theirs if ours is not None and theirs is not None else None
        rows.append({"name": name, "label": label, "candidate": ours, "champion": theirs, "delta": delta})
    return {
        "env": env,
        "generated": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "version": version,
        "info": candidate_info,
        "candidate": candidate,
        "champion": champion,
        "champion_version": version_of(champion_package) if champion_package else None,
        "champion_arn": champion_package["ModelPackageArn"] if champion_package else None,
        "metrics": rows,
        "champions_skipped": skipped,
        "data": compare_datasets(
            candidate_info["dataset"], dataset_snapshot(champion_package, registry) if champion_package else None
        ),
        "criteria": criteria(env, candidate, champion),
    }


def criteria(env: Environment, candidate: Metrics, champion: Metrics | None) -> list[dict]:
    """The promotion rules of the environment, checked on the numbers the report shows."""
    auc = candidate.values.get("auc")
    checks = [
        {
            "rule": f"AUC at least {env.training.auc_threshold:.2f}",
            "met": auc is not None and auc >= env.training.auc_threshold,
        }
    ]
    if champion and champion.values.get("auc") is not None:
        floor = champion.values["auc"] - env.training.champion_tolerance
        checks.append(
            {
                "rule": f"AUC not below the champion's by more than {env.training.champion_tolerance:.2f} "
                f"(at least {floor:.4f})",
                "met": auc is not None and auc >= floor,
            }
        )
    return checks


def _roc_image(path: Path, candidate: Metrics, champion: Metrics | None, version: int, champion_version) -> bool:
    import matplotlib

    matplotlib.use("Agg")  # no display on Jenkins agents
    import matplotlib.pyplot as plt

    if not candidate.roc and not (champion and champion.roc):
        return False
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    curves = [(candidate, f"candidate v{version}", "#1f6feb", "-")]
    if champion and champion.roc:
        curves.append((champion, f"champion v{champion_version}", "#d29922", "--"))
    for metrics, label, colour, style in curves:
        if metrics.roc:
            auc = metrics.values.get("auc")
            ax.plot(
                *metrics.roc,
                style,
                color=colour,
                linewidth=2,
                label=f"{label} (AUC {auc:.3f})" if auc is not None else label,
            )
    ax.plot([0, 1], [0, 1], ":", color="#8b949e", linewidth=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _confusion_image(path: Path, panels: list[tuple[str, list]]) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(title, cm) for title, cm in panels if cm]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), dpi=110, squeeze=False)
    for ax, (title, cm) in zip(axes[0], panels):
        ax.imshow(cm, cmap="Blues")
        high = max(max(row) for row in cm) or 1
        for i in range(2):
            for j in range(2):
                ax.text(
                    j,
                    i,
                    str(cm[i][j]),
                    ha="center",
                    va="center",
                    fontsize=15,
                    color="white" if cm[i][j] > high / 2 else "#0d1117",
                )
        ax.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["predicted 0", "predicted 1"],
            yticklabels=["actual 0", "actual 1"],
            title=title,
        )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _templates():
    import jinja2

    loader = jinja2.FileSystemLoader(str(TEMPLATES))
    html = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    markdown = jinja2.Environment(loader=loader, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    for environment in (html, markdown):
        environment.filters["num"] = lambda v, d=4: "–" if v is None else f"{v:.{d}f}"  # noqa: RUF001 (typographic dash)
        environment.filters["signed"] = lambda v: "" if v is None else f"{v:+.4f}"
    return html, markdown


def write_report(env: Environment, sessions: Sessions, version: int, out_dir: str) -> dict:
    """Write report.html, report.md and their images under OUT/<group>-v<N>/; returns the paths."""
    context = build_context(env, sessions, version)
    target = Path(out_dir) / f"{env.model_package_group}-v{version}"
    target.mkdir(parents=True, exist_ok=True)
    images = {}
    if _roc_image(target / "roc.png", context["candidate"], context["champion"], version, context["champion_version"]):
        images["roc"] = "roc.png"
    panels = [(f"candidate v{version}", context["candidate"].confusion_matrix)]
    if context["champion"]:
        panels.append((f"champion v{context['champion_version']}", context["champion"].confusion_matrix))
    if _confusion_image(target / "confusion-matrix.png", panels):
        images["confusion"] = "confusion-matrix.png"
    context["images"] = images
    html, markdown = _templates()
    paths = {"html": target / "report.html", "markdown": target / "report.md"}
    paths["html"].write_text(html.get_template("report.html.j2").render(**context))
    paths["markdown"].write_text(markdown.get_template("report.md.j2").render(**context))
    for name, file in images.items():
        paths[name] = target / file
    return paths
