# What runs in a workload account besides the pipelines: the inference schedule, retraining when
# inference fails on drift, train-with-HPO when model quality drops on labelled data, arrival triggers
# (objects landing in S3 start pipelines), the environment's notification rules (which statuses of which
# pipelines and steps tell whom what), the encrypted topics they go to, and the dashboard and alarms
# over the metrics the pipelines publish.

data "aws_partition" "current" {}

locals {
  prefix      = "${var.project}-${var.environment}"
  rule_topics = { for r in var.notification_rules : r.name => r.topic }
  # Known before the alarms exist: the topic's key policy names them, and the alarms need the topic.
  alarm_arns = [for a in var.alarms : "arn:${data.aws_partition.current.partition}:cloudwatch:${var.region}:${var.account_id}:alarm:${local.prefix}-${a.name}"]
}

module "notifications" {
  source = "./modules/notifications"

  name       = "${local.prefix}-notifications"
  account_id = var.account_id
  emails     = var.notification_emails
  # Only the project's own rules may publish: each topic's policy names the rules that target it.
  publisher_rule_arns = [for name, arn in module.notification_rules.rule_arns : arn if local.rule_topics[name] == "default"]
  alarm_arns          = local.alarm_arns
  extra_topics = {
    for key, topic in var.notification_topics : key => {
      name                = "${local.prefix}-${key}"
      emails              = topic.emails
      publisher_rule_arns = [for name, arn in module.notification_rules.rule_arns : arn if local.rule_topics[name] == key]
    }
  }
}

module "notification_rules" {
  source = "./modules/notification_rules"

  name_prefix = local.prefix
  rules       = var.notification_rules
  topic_arns  = merge({ default = module.notifications.topic_arn }, module.notifications.extra_topic_arns)
}

module "monitoring" {
  source = "./modules/monitoring"

  name_prefix    = local.prefix
  namespace      = var.metric_namespace
  dashboard_body = var.dashboard_body
  alarms         = var.alarms
  topic_arn      = module.notifications.topic_arn
}

module "inference_schedule" {
  source = "./modules/inference_schedule"

  name                = "${local.prefix}-inference-schedule"
  schedule_expression = var.schedule_expression
  pipeline_arn        = var.inference_pipeline_arn
  events_role_arn     = var.events_role_arn
}

# The two rules that start pipelines: what people are told about it is a notification rule of the YAML.
module "retrain_on_drift" {
  source = "./modules/retraining"

  name                 = "${local.prefix}-retrain-on-inference-failure"
  description          = "Inference failed because the model is stale (drift): start the train pipeline."
  watched_pipeline_arn = var.inference_pipeline_arn
  stale_model_steps    = ["DataDriftDetected"]
  start_pipeline_arn   = var.train_pipeline_arn
  events_role_arn      = var.events_role_arn
}

module "hpo_on_quality_drop" {
  source = "./modules/retraining"

  name                 = "${local.prefix}-hpo-on-quality-drop"
  description          = "Model quality fell below the registered baseline on labelled data: start train-with-HPO."
  watched_pipeline_arn = var.quality_pipeline_arn
  stale_model_steps    = ["ModelQualityBelowThreshold"]
  start_pipeline_arn   = var.hpo_pipeline_arn
  events_role_arn      = var.events_role_arn
}

module "arrivals" {
  source = "./modules/arrivals"

  name_prefix  = local.prefix
  bucket       = var.arrival_bucket
  function_arn = var.arrival_function_arn
  triggers     = var.arrival_triggers
}

module "run_metrics" {
  source = "./modules/run_metrics"

  name_prefix   = local.prefix
  function_name = "${var.project}-run-metrics" # pipelines/definitions.py RUN_METRICS_FUNCTION, deployed by run-pipeline
  account_id    = var.account_id
  region        = var.region
  namespace     = "MLOps/${var.project}" # pipelines/metrics.py namespace()
  environment   = var.environment
  pipelines = {
    train     = var.train_pipeline_arn
    hpo       = var.hpo_pipeline_arn
    inference = var.inference_pipeline_arn
    quality   = var.quality_pipeline_arn
  }
}

# Model package events happen in the registry account; the registry forwards them to this account's
# default bus, which accepts them through the statement `bootstrap-account` adds (an admin's act:
# events:PutPermission could open the bus to any account, so the deploy role does not hold it).
