# Retraining only when the model is stale: a watched pipeline's step that fails for a stale-model reason
# starts another pipeline (inference failing on drift starts training; model quality dropping on labelled
# data starts train-with-HPO). Telling people is the environment's notification rules' job.
#
# The rule matches SageMaker's "Model Building Pipeline Execution Step Status Change" events, whose detail
# names the failed step (stepName); the execution's own status event does not
# (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html).

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name" {
  type = string
}

variable "description" {
  type = string
}

variable "watched_pipeline_arn" {
  description = "The pipeline whose failed step means the model is stale."
  type        = string
}

variable "stale_model_steps" {
  description = "The watched pipeline's (Fail) steps whose failure means retrain; any other failed step starts nothing."
  type        = list(string)
}

variable "start_pipeline_arn" {
  description = "The pipeline started: train or train-with-HPO."
  type        = string
}

variable "events_role_arn" {
  type = string
}

resource "aws_cloudwatch_event_rule" "stale_model" {
  name        = var.name
  description = var.description
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Step Status Change"]
    detail = {
      pipelineArn       = [var.watched_pipeline_arn]
      currentStepStatus = ["Failed"]
      stepName          = var.stale_model_steps
    }
  })
}

# Provider 3.x has no sagemaker_pipeline_target block: the pipeline ARN and the role start it with its
# default parameters.
resource "aws_cloudwatch_event_target" "start_pipeline" {
  rule      = aws_cloudwatch_event_rule.stale_model.name
  target_id = "start-pipeline"
  arn       = var.start_pipeline_arn
  role_arn  = var.events_role_arn
}

output "rule_name" {
  value = aws_cloudwatch_event_rule.stale_model.name
}

output "rule_arn" {
  value = aws_cloudwatch_event_rule.stale_model.arn
}
