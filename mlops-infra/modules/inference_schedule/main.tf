# Batch inference on a schedule: EventBridge starts the inference pipeline as the events role.

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

variable "schedule_expression" {
  type = string
}

variable "pipeline_arn" {
  type = string
}

variable "events_role_arn" {
  type = string
}

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = var.name
  description         = "Starts batch inference (${var.schedule_expression})."
  schedule_expression = var.schedule_expression
}

# Provider 3.x has no sagemaker_pipeline_target block: the pipeline ARN and the role are enough to
# start it with its default parameters.
resource "aws_cloudwatch_event_target" "inference_pipeline" {
  rule      = aws_cloudwatch_event_rule.schedule.name
  target_id = "start-inference-pipeline"
  arn       = var.pipeline_arn
  role_arn  = var.events_role_arn
}

output "rule_name" {
  value = aws_cloudwatch_event_rule.schedule.name
}

output "rule_arn" {
  value = aws_cloudwatch_event_rule.schedule.arn
}
