# Every value is generated from environments/<env>.yaml by `promote infra` (terraform.tfvars.json in its
# working directory): keep no hand-written tfvars.

variable "region" {
  description = "AWS region of the workload account."
  type        = string
}

variable "project" {
  description = "Project name: prefix of every resource name."
  type        = string
}

variable "environment" {
  description = "Environment name (dev, prod, ...)."
  type        = string
}

variable "account_id" {
  description = "The workload account this configuration is applied in."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "The account_id must be a 12-digit AWS account id."
  }
}

variable "registry_account_id" {
  description = "The central model registry account: its model package events are forwarded to this account's default bus."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.registry_account_id))
    error_message = "The registry_account_id must be a 12-digit AWS account id."
  }
}

variable "model_package_group_name" {
  description = "Model package group in the registry account whose new versions approvers are told about."
  type        = string
}

variable "inference_pipeline_arn" {
  description = "The batch inference pipeline started on the schedule."
  type        = string
}

variable "train_pipeline_arn" {
  description = "The training pipeline started when inference fails (drift)."
  type        = string
}

variable "quality_pipeline_arn" {
  description = "The model-quality pipeline (labels joined with predictions, compared with the version's baseline)."
  type        = string
}

variable "hpo_pipeline_arn" {
  description = "The train-with-HPO pipeline started when model quality drops."
  type        = string
}

variable "events_role_arn" {
  description = "Role EventBridge assumes to start the pipelines (created by bootstrap-account)."
  type        = string
}

variable "schedule_expression" {
  description = "When batch inference runs: cron(...) or rate(...)."
  type        = string

  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.schedule_expression))
    error_message = "The schedule_expression must be cron(...) or rate(...)."
  }
}

variable "arrival_bucket" {
  description = "The bucket whose new objects the arrival triggers watch (its EventBridge notifications are on)."
  type        = string
}

variable "arrival_function_arn" {
  description = "The function that starts a pipeline for an arrived object (deployed by run-pipeline)."
  type        = string
}

variable "arrival_triggers" {
  description = "Objects that start a pipeline when they land: prefix, suffix, pipeline name, parameter to set."
  type = list(object({
    name          = string
    prefix        = string
    suffix        = string
    pipeline_name = string
    parameter     = string
  }))
  default = []
}

variable "notification_emails" {
  description = "Addresses subscribed (by email) to the notification topic."
  type        = list(string)
  default     = []
}

variable "notification_rules" {
  description = "The environment's notification rules (notifications.rules), rendered: name, description, topic key, event pattern (JSON), input paths and template."
  type = list(object({
    name           = string
    description    = string
    topic          = string
    event_pattern  = string
    input_paths    = map(string)
    input_template = string
  }))
  default = []
}

variable "notification_topics" {
  description = "Topics besides the environment's own, by key: notifications.topics and one per rule with recipients."
  type = map(object({
    emails = list(string)
  }))
  default = {}
}

variable "metric_namespace" {
  description = "Where the runs publish their CloudWatch metrics: MLOps/<project>."
  type        = string
}

variable "dashboard_body" {
  description = "The environment's CloudWatch dashboard (widgets JSON), rendered from the metric contract."
  type        = string
}

variable "alarms" {
  description = "The environment's alarms: quality below the floor, violations above the limit, no successful inference."
  type = list(object({
    name                = string
    description         = string
    metric_name         = string
    dimensions          = map(string)
    statistic           = string
    period              = number
    evaluation_periods  = number
    comparison_operator = string
    threshold           = number
    treat_missing_data  = string
  }))
  default = []
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
