"""The approval report: written through the CLI, images real, numbers those registered with the versions."""

import re
import struct

from tests.promote.conftest import CANDIDATE_REPORT, CHAMPION_REPORT


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height, len(data)


def _metric_rows(html):
    table = html.split('<table id="metrics">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", table, re.S):
        rows[row[0]] = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row[1])
    return rows


def test_report_compares_candidate_with_champion_and_shows_its_images(registry_world, cli, tmp_path):
    registry_world.register(CHAMPION_REPORT, status="Approved", registered_by="carol")
    registry_world.register(CANDIDATE_REPORT, registered_by="alice")

    result = cli("promote", "report", "--env", "prod", "--version", "2", "--out", str(tmp_path), "--as", "alex")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "mlops-demo-models-v2"
    assert result.stdout.split() == [
        str(folder / n) for n in ("report.html", "report.md", "roc.png", "confusion-matrix.png")
    ]

    roc_w, roc_h, roc_bytes = _png_size(folder / "roc.png")
    cm_w, cm_h, cm_bytes = _png_size(folder / "confusion-matrix.png")
    assert 400 <= roc_w <= 1200 and 400 <= roc_h <= 1200 and roc_bytes > 10_000
    assert cm_w > cm_h and cm_bytes > 10_000  # candidate and champion side by side

    html = (folder / "report.html").read_text()
    assert '<img src="roc.png"' in html and '<img src="confusion-matrix.png"' in html
    assert _metric_rows(html) == {
        "AUC": ["0.9810", "0.9520", "+0.0290"],
        "Accuracy": ["0.9610", "0.9040", "+0.0570"],
        "Precision": ["0.9420", "0.8540", "+0.0880"],
        "Recall": ["0.9530", "0.8940", "+0.0590"],
        "F1": ["0.9470", "0.8740", "+0.0730"],
    }
    assert "Champion: version 1" in html
    assert 'AUC at least 0.90</td>\n      <td class="met">met' in html
    assert "mean radius" in html and "s3://mlops-demo-dev-artifacts/data/breast-cancer.csv" in html

    markdown = (folder / "report.md").read_text()
    assert "| AUC | 0.9810 | 0.9520 | +0.0290 |" in markdown
    assert "![ROC curves of candidate and champion](roc.png)" in markdown


def test_first_version_has_no_champion_and_a_missed_threshold_says_so(registry_world, prod_env, sessions, tmp_path):
    from promote.report import write_report
    from tests.promote.conftest import evaluation_report

    weak = evaluation_report(0.71, [[100, 43], [30, 55]], [0.0, 0.4, 1.0], [0.0, 0.7, 1.0], 0.56, 0.65, 0.6, 0.68)
    registry_world.register(weak, registered_by="alice")
    paths = write_report(prod_env, sessions(prod_env, identity="bob"), 1, tmp_path)
    html = paths["html"].read_text()
    assert "No other version is Approved yet" in html
    assert '<td class="missed">NOT met</td>' in html
    assert _metric_rows(html)["AUC"] == ["0.7100", "–", ""]
