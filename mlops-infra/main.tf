# What runs in a workload account besides the pipelines: the inference schedule, retraining when
# inference fails on drift (other failures only notify), train-with-HPO when model quality drops on
# labelled data, arrival triggers (objects landing in S3 start pipelines), failure and approval
# notifications, and the encrypted topic they go to.

locals {
  prefix = "${var.project}-${var.environment}"
}

module "notifications" {
  source = "./modules/notifications"

  name       = "${local.prefix}-notifications"
  account_id = var.account_id
  emails     = var.notification_emails
  # Only the project's own rules may publish: the topic policy names each rule.
  publisher_rule_arns = [
    module.retraining.rule_arn,
    module.retraining.failure_rule_arn,
    module.train_failed.rule_arn,
    module.approval_pending.rule_arn,
    module.quality_retraining.rule_arns[0],
    module.quality_retraining.rule_arns[1],
  ]
}

module "inference_schedule" {
  source = "./modules/inference_schedule"

  name                = "${local.prefix}-inference-schedule"
  schedule_expression = var.schedule_expression
  pipeline_arn        = var.inference_pipeline_arn
  events_role_arn     = var.events_role_arn
}

module "retraining" {
  source = "./modules/retraining"

  name                   = "${local.prefix}-retrain-on-inference-failure"
  failure_rule_name      = "${local.prefix}-inference-failed"
  inference_pipeline_arn = var.inference_pipeline_arn
  train_pipeline_arn     = var.train_pipeline_arn
  events_role_arn        = var.events_role_arn
  topic_arn              = module.notifications.topic_arn
}

module "quality_retraining" {
  source = "./modules/quality_retraining"

  name_prefix          = local.prefix
  quality_pipeline_arn = var.quality_pipeline_arn
  hpo_pipeline_arn     = var.hpo_pipeline_arn
  events_role_arn      = var.events_role_arn
  topic_arn            = module.notifications.topic_arn
}

module "train_failed" {
  source = "./modules/event_notification"

  name        = "${local.prefix}-train-failed"
  description = "The training pipeline failed: tell the team."
  topic_arn   = module.notifications.topic_arn
  event_pattern = {
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
    detail = {
      pipelineArn                    = [var.train_pipeline_arn]
      currentPipelineExecutionStatus = ["Failed"]
    }
  }
  input_paths = {
    pipeline  = "$.detail.pipelineArn"
    execution = "$.detail.pipelineExecutionArn"
    time      = "$.time"
  }
  input_template = "\"[${local.prefix}] Training pipeline <pipeline> FAILED at <time>. Execution: <execution>. No new model version was registered; see the execution's failed step.\""
}

module "approval_pending" {
  source = "./modules/event_notification"

  name        = "${local.prefix}-model-pending-approval"
  description = "A new model version waits for approval in the central registry: tell the approvers."
  topic_arn   = module.notifications.topic_arn
  event_pattern = {
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Package State Change"]
    detail = {
      ModelPackageGroupName = [var.model_package_group_name]
      ModelApprovalStatus   = ["PendingManualApproval"]
    }
  }
  input_paths = {
    group   = "$.detail.ModelPackageGroupName"
    version = "$.detail.ModelPackageVersion"
    package = "$.detail.ModelPackageArn"
    time    = "$.time"
  }
  input_template = "\"[${local.prefix}] Model <group> version <version> is waiting for your approval (registered <time>): <package>. Review it with: promote report --env ${var.environment} --version <version>, then promote approve or promote reject.\""
}

module "arrivals" {
  source = "./modules/arrivals"

  name_prefix  = local.prefix
  bucket       = var.arrival_bucket
  function_arn = var.arrival_function_arn
  triggers     = var.arrival_triggers
}

# Model package events happen in the registry account; the registry forwards them to this account's
# default bus, which accepts them through the statement `bootstrap-account` adds (an admin's act:
# events:PutPermission could open the bus to any account, so the deploy role does not hold it).
