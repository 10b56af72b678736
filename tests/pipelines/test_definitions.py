"""The pipeline definitions as SageMaker would receive them: parameters, no account ids baked in,
the registry group by ARN, KMS on every output, conditions wired to the reports the scripts write,
and building them calls no AWS at all."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import zipfile

import pytest

from pipelines.definitions import PIPELINES, STEPS_DIR, build_pipelines

KMS = {"Get": "Parameters.KmsKeyId"}


def definition(spec) -> dict:
    return json.loads(spec.definition)


def all_steps(steps):
    """Every step, including those nested in condition branches."""
    for step in steps:
        yield step
        yield from all_steps(step.get("Arguments", {}).get("IfSteps", []))
        yield from all_steps(step.get("Arguments", {}).get("ElseSteps", []))


def step(spec, name) -> dict:
    return next(s for s in all_steps(definition(spec)["Steps"]) if s["Name"] == name)


def test_each_pipeline_has_its_parameters_with_environment_defaults(dev_specs, dev_environment):
    env = dev_environment
    common = {
        "ExecutionRoleArn": env.role_arn("execution"),
        "KmsKeyId": env.kms_key_alias,
        "ModelPackageGroupArn": env.model_package_group_arn,
        "ArtifactsBucket": env.buckets.artifacts,
        "ModelArtifactsBucket": env.buckets.registry,
    }
    expected = {
        "train": {
            "InputDataUri",
            "TrainingInstanceType",
            "AucThreshold",
            "ChampionTolerance",
            "DeliveryUri",
            "GitCommit",
            "BuildId",
            "BuildUrl",
            "ProcessingInstanceType",
        },
        "inference": {
            "InputDataUri",
            "PredictionsBucket",
            "DriftSignificance",
            "TransformInstanceType",
            "LatestApprovedFunctionArn",
            "ProcessingInstanceType",
        },
    }
    expected["hpo"] = expected["train"]
    expected["quality"] = {"LabelsUri", "PredictionsBucket", "QualitySignificance", "ProcessingInstanceType"}
    assert set(dev_specs) == set(PIPELINES)
    for which, spec in dev_specs.items():
        assert spec.name == env.pipelines[which]
        declared = {p["Name"]: p.get("DefaultValue") for p in definition(spec)["Parameters"]}
        assert declared == spec.parameters
        assert set(declared) == set(common) | expected[which]
        assert {k: declared[k] for k in common} == common
    train = dev_specs["train"].parameters
    assert train["AucThreshold"] == 0.9 and train["ChampionTolerance"] == 0.02
    assert "ModelApprovalStatus" not in train  # a run cannot choose its version's approval status
    assert train["InputDataUri"].startswith(f"s3://{env.buckets.artifacts}/datasets/breast-cancer/")
    assert dev_specs["inference"].parameters["DriftSignificance"] == 0.01


@pytest.mark.parametrize(
    "env_fixture, specs_fixture", [("dev_environment", "dev_specs"), ("prod_environment", "prod_specs")]
)
def test_no_account_id_outside_parameter_defaults(request, env_fixture, specs_fixture):
    env, specs = request.getfixturevalue(env_fixture), request.getfixturevalue(specs_fixture)
    accounts = set(env.sandbox_accounts.values())
    for which, spec in specs.items():
        document = definition(spec)
        defaults = json.dumps(document.pop("Parameters"))
        body = json.dumps(document)
        assert [a for a in accounts if a in body] == [], f"{which} bakes in an account id"
        # ...while the defaults do carry them, so the test above is not vacuous.
        assert env.account_id in defaults and env.registry_account_id in defaults


def test_registry_group_is_referenced_by_arn(dev_specs, dev_environment):
    group = {"Get": "Parameters.ModelPackageGroupArn"}
    for which in ("train", "hpo"):
        register = step(dev_specs[which], "Register-RegisterModel")
        assert register["Type"] == "RegisterModel"
        assert register["Arguments"]["ModelPackageGroupName"] == group
        assert register["Arguments"]["ModelApprovalStatus"] == "PendingManualApproval"
        evaluate = step(dev_specs[which], "Evaluate")["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert evaluate[evaluate.index("--model-package-group-arn") + 1] == group
    lambda_step = step(dev_specs["inference"], "LatestApprovedModel")
    assert lambda_step["Arguments"] == {"model_package_group_arn": group, "environment": "dev"}
    assert dev_environment.model_package_group_arn.startswith(
        f"arn:aws:sagemaker:us-east-1:{dev_environment.registry_account_id}:model-package-group/"
    )


def test_registered_package_carries_metrics_baselines_and_lineage(dev_specs):
    train = step(dev_specs["train"], "Register-RegisterModel")["Arguments"]
    assert train["ModelMetrics"]["ModelQuality"]["Statistics"]["ContentType"] == "application/json"
    assert set(train["DriftCheckBaselines"]["ModelDataQuality"]) == {"Statistics", "Constraints"}
    metadata = train["CustomerMetadataProperties"]
    assert {
        "git_commit",
        "build_id",
        "build_url",
        "dataset_uri",
        "dataset_sha256",
        "pipeline_execution_arn",
        "hyperparameters",
        "auc",
        "code_sha256",
        "model_sha256",
        "evaluation_sha256",
        "statistics_sha256",
        "constraints_sha256",
    } <= set(metadata)
    # the version points at the sealed copies, and records the sha256 the Seal step computed for each
    sealed = {"Get": "Steps.Seal.PropertyFiles.SealedArtefacts"}
    for name in ("model", "evaluation", "statistics", "constraints"):
        assert metadata[f"{name}_sha256"]["Std:JsonGet"] == {"Path": f"{name}.sha256", "PropertyFile": sealed}
    assert metadata["pipeline_execution_arn"] == {"Get": "Execution.PipelineExecutionArn"}
    assert metadata["dataset_sha256"]["Std:JsonGet"]["Path"] == "dataset.sha256"
    assert json.loads(metadata["hyperparameters"]) == {"eta": 0.2, "max_depth": 4, "num_round": 60}
    assert metadata["review_board_approval_required"] == "false"
    container = train["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"]["Std:JsonGet"] == {"Path": "model.s3_uri", "PropertyFile": sealed}
    assert train["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]["Std:JsonGet"]["Path"] == "evaluation.s3_uri"
    seal = step(dev_specs["train"], "Seal")["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in seal["ProcessingInputs"]}
    assert inputs["model"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"

    hpo = step(dev_specs["hpo"], "Register-RegisterModel")["Arguments"]["CustomerMetadataProperties"]
    assert hpo["review_board_approval_required"] == "true"
    assert "TrainingJobName" in json.dumps(hpo["hyperparameters"])


def test_every_output_and_artifact_is_kms_encrypted(dev_specs):
    seen = set()
    for spec in dev_specs.values():
        for s in all_steps(definition(spec)["Steps"]):
            args = s.get("Arguments", {})
            if s["Type"] == "Processing":
                assert args["ProcessingOutputConfig"]["KmsKeyId"] == KMS, s["Name"]
                assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS
            elif s["Type"] == "Training":
                assert args["OutputDataConfig"]["KmsKeyId"] == KMS and args["ResourceConfig"]["VolumeKmsKeyId"] == KMS
            elif s["Type"] == "Tuning":
                job = args["TrainingJobDefinition"]
                assert job["OutputDataConfig"]["KmsKeyId"] == KMS
                assert job["HyperParameterTuningResourceConfig"]["VolumeKmsKeyId"] == KMS
            elif s["Type"] == "Transform":
                assert (
                    args["TransformOutput"]["KmsKeyId"] == KMS and args["TransformResources"]["VolumeKmsKeyId"] == KMS
                )
            seen.add(s["Type"])
    assert {"Processing", "Training", "Tuning", "Transform"} <= seen


def test_quality_condition_reads_the_report_evaluate_writes(dev_specs, steps, model_tarball, preprocessed, tmp_path):
    for which in ("train", "hpo"):
        evaluate = step(dev_specs[which], "Evaluate")
        [property_file] = evaluate["PropertyFiles"]
        output = next(
            o
            for o in evaluate["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            if o["OutputName"] == property_file["OutputName"]
        )
        condition = step(dev_specs[which], "CheckModelQuality")["Arguments"]
        reference = {"Get": f"Steps.Evaluate.PropertyFiles.{property_file['PropertyFileName']}"}
        paths = []
        for c in condition["Conditions"]:
            assert c["Type"] == "GreaterThanOrEqualTo"
            assert c["LeftValue"]["Std:JsonGet"]["PropertyFile"] == reference
            assert c["LeftValue"]["Std:JsonGet"]["Path"] == "binary_classification_metrics.auc.value"
            paths.append(c["RightValue"])
        assert paths[0] == {"Get": "Parameters.AucThreshold"}
        # the environment's floor as a literal: no run parameter can lower it
        assert paths[1] == dev_specs[which].parameters["AucThreshold"] == 0.9
        assert paths[2]["Std:JsonGet"]["Path"] == "decision.champion_minimum_auc"
        assert [s["Name"] for s in condition["IfSteps"]] == ["Seal", "Register-RegisterModel"]
        assert [s["Name"] for s in condition["ElseSteps"]] == ["ModelQualityBelowThreshold"]

    # The paths the condition reads exist in a report the script really writes, at the file it names.
    local = output["S3Output"]["LocalPath"]
    argv = ["--model", str(model_tarball), "--test", str(preprocessed / "test"), "--output", str(tmp_path)]
    assert steps.evaluate.main(argv) == 0
    report = json.loads((tmp_path / property_file["FilePath"]).read_text())
    assert isinstance(report["binary_classification_metrics"]["auc"]["value"], float)
    assert isinstance(report["decision"]["champion_minimum_auc"], float)
    arguments = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--output") + 1] == local


def test_fail_steps_say_what_went_wrong(dev_specs):
    rejected = step(dev_specs["train"], "ModelQualityBelowThreshold")
    message = rejected["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert message[0] == "ModelQualityBelowThreshold: "
    assert message[1]["Std:JsonGet"]["Path"] == "decision.message"

    drifted = step(dev_specs["inference"], "DataDriftDetected")
    assert drifted["Type"] == "Fail"
    values = drifted["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert values[0] == "DataDriftDetected: " and values[1]["Std:JsonGet"]["Path"] == "message"
    assert "/constraint_violations.json" in values
    check = step(dev_specs["inference"], "CheckDataDrift")["Arguments"]
    [condition] = check["Conditions"]
    assert condition["Type"] == "Equals" and condition["RightValue"] == 0
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "violation_count"
    assert [s["Name"] for s in check["IfSteps"]] == ["CreateModel-CreateModel", "BatchTransform", "RecordRun"]
    # where the version ran is recorded only after the transform succeeded
    record = next(s for s in check["IfSteps"] if s["Name"] == "RecordRun")
    assert record["DependsOn"] == ["BatchTransform"] and record["Arguments"]["action"] == "record"
    assert [s["Name"] for s in check["ElseSteps"]] == ["DataDriftDetected"]


def test_the_data_contract_gates_training_and_comes_before_the_drift_check(dev_specs, dev_environment):
    from pipelines.contracts import load_contract

    [upload] = [u for u in dev_specs["train"].uploads if u.s3_uri.endswith("/contract.json")]
    assert upload.s3_uri.startswith(f"s3://{dev_environment.buckets.artifacts}/contracts/")
    assert json.loads(upload.body) == load_contract(dev_environment)
    for which, name in (("train", "Preprocess"), ("hpo", "Preprocess"), ("inference", "DataValidation")):
        arguments = step(dev_specs[which], name)["Arguments"]
        inputs = {i["InputName"]: i["S3Input"] for i in arguments["ProcessingInputs"]}
        assert inputs["contract"]["S3Uri"] == upload.s3_uri
        container = arguments["AppSpecification"]["ContainerArguments"]
        assert container[container.index("--contract") + 1] == inputs["contract"]["LocalPath"]
        assert upload in dev_specs[which].uploads

    top = [s["Name"] for s in definition(dev_specs["inference"])["Steps"]]
    assert top == ["LatestApprovedModel", "DataValidation", "CheckDataValidation"]
    gate = step(dev_specs["inference"], "CheckDataValidation")["Arguments"]
    [condition] = gate["Conditions"]
    assert condition["LeftValue"]["Std:JsonGet"]["PropertyFile"] == {
        "Get": "Steps.DataValidation.PropertyFiles.DataValidationResult"
    }
    assert [s["Name"] for s in gate["IfSteps"]] == ["DataDriftCheck", "CheckDataDrift"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["DataValidationFailed"]
    failed = step(dev_specs["inference"], "DataValidationFailed")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert failed[0] == "DataValidationFailed: " and "/contract_violations.json" in failed


def test_inference_uses_the_model_resolved_at_run_time(dev_specs, dev_environment):
    spec = dev_specs["inference"]
    function, run_metrics = spec.lambda_functions
    assert function.handler == "latest_approved.handler" and function.role_arn == dev_environment.role_arn("lambda")
    # every pipeline also deploys the function that counts its ended runs, with the contract in its zip
    assert all(s.lambda_functions[-1] == run_metrics for s in dev_specs.values())
    with zipfile.ZipFile(io.BytesIO(run_metrics.zip_bytes)) as archive:
        assert archive.namelist() == ["run_metrics.py", "metric_data.py"]
    with zipfile.ZipFile(io.BytesIO(function.zip_bytes)) as archive:
        assert archive.namelist() == ["latest_approved.py"]
        assert "def handler(event" in archive.read("latest_approved.py").decode()
    assert spec.parameters["LatestApprovedFunctionArn"].endswith(f":function:{function.name}")
    container = step(spec, "CreateModel-CreateModel")["Arguments"]["PrimaryContainer"]
    assert container["Image"] == {"Get": "Steps.LatestApprovedModel.OutputParameters['image_uri']"}
    assert container["ModelDataUrl"] == {"Get": "Steps.LatestApprovedModel.OutputParameters['model_data_url']"}
    assert container["Environment"]["MODEL_VERSION"] == {
        "Get": "Steps.LatestApprovedModel.OutputParameters['model_version']"
    }
    assert step(spec, "CreateModel-CreateModel")["Arguments"]["ExecutionRoleArn"] == {
        "Get": "Parameters.ExecutionRoleArn"
    }
    output = json.dumps(step(spec, "BatchTransform")["Arguments"]["TransformOutput"]["S3OutputPath"])
    assert "model-version" in output and "OutputParameters['model_version']" in output
    drift_inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"] for i in step(spec, "DataDriftCheck")["Arguments"]["ProcessingInputs"]
    }
    assert drift_inputs["statistics"] == {
        "Get": "Steps.LatestApprovedModel.OutputParameters['baseline_statistics_uri']"
    }


def test_step_code_is_uploaded_content_addressed_with_what_the_definition_runs(dev_specs):
    spec = dev_specs["train"]
    uploads = {u.s3_uri: u.body for u in spec.uploads}
    for s in all_steps(definition(spec)["Steps"]):
        if s["Type"] == "Processing":
            entry = s["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
            assert entry[0] == "python3" and entry[1].startswith("/opt/ml/processing/input/code/")
            code = next(i["S3Input"]["S3Uri"] for i in s["Arguments"]["ProcessingInputs"] if i["InputName"] == "code")
            script = entry[1].rsplit("/", 1)[1]
            assert uploads[code + script] == (STEPS_DIR / script).read_bytes()
            assert uploads[code + "tabular.py"] == (STEPS_DIR / "tabular.py").read_bytes()
    hyper = step(spec, "Train")["Arguments"]["HyperParameters"]
    sourcedir = json.loads(hyper["sagemaker_submit_directory"])
    assert json.loads(hyper["sagemaker_program"]) == "train.py"
    with tarfile.open(fileobj=io.BytesIO(uploads[sourcedir])) as tar:
        assert {"train.py", "inference.py", "tabular.py"} <= set(tar.getnames())
    dataset = spec.parameters["InputDataUri"]
    assert uploads[dataset].startswith(b"mean_radius,")


def test_building_is_deterministic_offline_and_follows_code_changes(dev_environment, dev_specs, monkeypatch, tmp_path):
    import shutil

    import pipelines.definitions as definitions
    from pipelines.definitions import OfflineBuildError, offline_session

    attempts = []
    real_connect = socket.socket.connect

    def record(self, address):
        attempts.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    real_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        attempts.append(host)  # offline, a name lookup fails before any connect: count it too
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # would be refused if anything tried
    rebuilt = build_pipelines(dev_environment)
    assert attempts == [], "building a definition opened a network connection (AWS call or SDK telemetry)"
    assert {k: s.definition for k, s in rebuilt.items()} == {k: s.definition for k, s in dev_specs.items()}
    with pytest.raises(OfflineBuildError, match="ListPipelines"):
        offline_session(dev_environment).sagemaker_client.list_pipelines()

    changed = tmp_path / "steps"
    shutil.copytree(STEPS_DIR, changed)
    (changed / "drift_check.py").write_text((STEPS_DIR / "drift_check.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(definitions, "STEPS_DIR", changed)
    edited = build_pipelines(dev_environment, "inference")["inference"]
    assert edited.definition != rebuilt["inference"].definition
    code_uris = {u.s3_uri for u in rebuilt["inference"].uploads if "/code/" in u.s3_uri}
    assert {u.s3_uri for u in edited.uploads}.isdisjoint(code_uris)


def test_dry_run_prints_every_definition_without_aws(cli, tmp_path):
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "MLOPS_SANDBOX_HOME": str(tmp_path / "none")}
    result = cli("run-pipeline", "--env", "dev", "--pipeline", "all", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"train", "hpo", "inference", "quality"}
    assert printed["train"]["definition"]["Steps"][0]["Name"] == "Preprocess"
    assert printed["inference"]["lambda_functions"][0]["name"] == "mlops-demo-latest-approved-model"
    assert not (tmp_path / "none").exists(), "a dry run must not start the sandbox"

    out = tmp_path / "inference.json"
    result = cli("run-pipeline", "definition", "--env", "prod", "--pipeline", "inference", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["Parameters"][0]["Name"] == "ExecutionRoleArn"
    assert "222222222222" in json.dumps(written["Parameters"])


def test_more_instances_shard_the_checks_and_the_transform(dev_environment, dev_specs):
    """inference.instance_count: N > 1 runs each check on N instances, each seeing its share of the batch
    (ShardedByS3Key, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html)
    and writing a partial, then a 1-instance merge whose summary the condition reads; the Fail steps
    (what the EventBridge rules match) keep their names. One instance (the shipped files): no merge step."""
    import dataclasses

    for spec in (dev_specs["inference"], dev_specs["quality"]):
        names = [s["Name"] for s in all_steps(definition(spec)["Steps"])]
        assert not [n for n in names if n.endswith("Merge")], names
    env = dataclasses.replace(
        dev_environment,
        inference=dataclasses.replace(dev_environment.inference, check_instance_count=3, transform_instance_count=3),
    )
    specs = build_pipelines(env, ["inference", "quality"])
    inference, quality = specs["inference"], specs["quality"]

    def processing(spec, name):
        args = step(spec, name)["Arguments"]
        inputs = {i["InputName"]: i["S3Input"] for i in args["ProcessingInputs"]}
        outputs = {o["OutputName"]: o["S3Output"] for o in args["ProcessingOutputConfig"]["Outputs"]}
        return args, inputs, outputs, args["AppSpecification"]["ContainerArguments"]

    for spec, check, summary, output, condition, failure in (
        (
            inference,
            "DataValidation",
            "DataValidationResult",
            "validation",
            "CheckDataValidation",
            "DataValidationFailed",
        ),
        (inference, "DataDriftCheck", "DriftCheckResult", "drift", "CheckDataDrift", "DataDriftDetected"),
        (quality, "ModelQuality", "ModelQualityResult", "quality", "CheckModelQuality", "ModelQualityBelowThreshold"),
    ):
        args, inputs, outputs, argv = processing(spec, check)
        assert args["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
        assert {n: i["S3DataDistributionType"] for n, i in inputs.items()} == {
            n: "ShardedByS3Key" if n == "batch" else "FullyReplicated" for n in inputs
        }
        assert argv[-4:] == [
            "--shard-output",
            outputs["partials"]["LocalPath"],
            "--resource-config",
            "/opt/ml/config/resourceconfig.json",
        ]
        assert output not in outputs and "PropertyFiles" not in step(spec, check)
        merge_args, merge_inputs, merge_outputs, merge_argv = processing(spec, f"{check}Merge")
        assert merge_args["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
        assert merge_args.get("NetworkConfig") == args.get("NetworkConfig")
        assert "batch" not in merge_inputs
        assert merge_inputs["partials"]["S3Uri"] == {
            "Get": f"Steps.{check}.ProcessingOutputConfig.Outputs['partials'].S3Output.S3Uri"
        }
        # the merge takes the check's arguments with the partials in place of the batch
        expected = [a for a in argv[:-4]]
        if "--input" in expected:
            at = expected.index("--input")
            expected[at : at + 2] = []
        # ...and publishes the check's metrics, which no shard does (it decides nothing)
        published = merge_argv[merge_argv.index("--metrics-namespace") :]
        assert "--metrics-namespace" not in argv and published[:2] == ["--metrics-namespace", "MLOps/mlops-demo"]
        assert [a for a in merge_argv if a not in ("--merge-partials", merge_inputs["partials"]["LocalPath"])] == (
            expected + published
        )
        assert merge_argv[merge_argv.index("--merge-partials") + 1] == merge_inputs["partials"]["LocalPath"]
        assert list(merge_outputs) == [output]
        [property_file] = step(spec, f"{check}Merge")["PropertyFiles"]
        assert property_file["PropertyFileName"] == summary and property_file["OutputName"] == output
        [gate] = step(spec, condition)["Arguments"]["Conditions"]
        assert gate["LeftValue"]["Std:JsonGet"]["PropertyFile"] == {
            "Get": f"Steps.{check}Merge.PropertyFiles.{summary}"
        }
        assert step(spec, failure)["Type"] == "Fail"
    _, _, validation_outputs, _ = processing(inference, "DataValidation")
    assert set(validation_outputs) == {"partials", "records"}
    assert [s["Name"] for s in definition(inference)["Steps"]] == [
        "LatestApprovedModel",
        "DataValidation",
        "DataValidationMerge",
        "CheckDataValidation",
    ]
    assert [s["Name"] for s in step(inference, "CheckDataValidation")["Arguments"]["IfSteps"]] == [
        "DataDriftCheck",
        "DataDriftCheckMerge",
        "CheckDataDrift",
    ]

    transform = step(inference, "BatchTransform")["Arguments"]
    assert transform["TransformResources"]["InstanceCount"] == 3
    assert transform["TransformInput"]["SplitType"] == "Line" and transform["BatchStrategy"] == "MultiRecord"
    assert 0 < transform["MaxPayloadInMB"] <= 100 and transform["TransformOutput"]["AssembleWith"] == "Line"
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": "Steps.DataValidation.ProcessingOutputConfig.Outputs['records'].S3Output.S3Uri"
    }


def test_notification_rules_know_every_step_and_failure_the_pipelines_have(dev_specs):
    """mlops_core validates a rule's step and failure reason against its own table (it may not import the
    builders): the table is exactly the built definitions' steps, and the failures are their Fail steps."""
    from mlops_core.config import FAILURE_REASONS, PIPELINE_STEPS

    built = {which: [s["Name"] for s in all_steps(definition(spec)["Steps"])] for which, spec in dev_specs.items()}
    # with inference.instance_count above 1 each sharded check has its merge step too, and a network-isolated
    # check its metrics publisher (tests/pipelines/test_locked_down.py builds those)
    merges = {
        "inference": [
            "DataValidationMerge",
            "DataDriftCheckMerge",
            "PublishDataValidationMetrics",
            "PublishDataDriftCheckMetrics",
        ],
        "quality": ["ModelQualityMerge"],
    }
    built = {k: sorted(v + merges.get(k, [])) for k, v in built.items()}
    assert built == {k: sorted(v) for k, v in PIPELINE_STEPS.items()}
    fail_steps = {
        s["Name"] for spec in dev_specs.values() for s in all_steps(definition(spec)["Steps"]) if s["Type"] == "Fail"
    }
    assert fail_steps == set(FAILURE_REASONS)
