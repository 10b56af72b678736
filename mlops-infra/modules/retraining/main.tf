# Retraining: an inference execution that fails (the drift check fails it) starts the training
# pipeline and tells the team why a new model version is coming.

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

variable "inference_pipeline_arn" {
  type = string
}

variable "train_pipeline_arn" {
  type = string
}

variable "events_role_arn" {
  type = string
}

variable "topic_arn" {
  type = string
}

resource "aws_cloudwatch_event_rule" "inference_failed" {
  name        = var.name
  description = "Inference failed (drift or error): start retraining and notify."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
    detail = {
      pipelineArn                    = [var.inference_pipeline_arn]
      currentPipelineExecutionStatus = ["Failed"]
    }
  })
}

resource "aws_cloudwatch_event_target" "start_training" {
  rule      = aws_cloudwatch_event_rule.inference_failed.name
  target_id = "start-train-pipeline"
  arn       = var.train_pipeline_arn
  role_arn  = var.events_role_arn
}

resource "aws_cloudwatch_event_target" "notify" {
  rule      = aws_cloudwatch_event_rule.inference_failed.name
  target_id = "notify-retraining"
  arn       = var.topic_arn

  input_transformer {
    input_paths = {
      pipeline  = "$.detail.pipelineArn"
      execution = "$.detail.pipelineExecutionArn"
      time      = "$.time"
    }
    input_template = "\"Inference pipeline <pipeline> FAILED at <time> (execution <execution>): retraining has been started. A new model version will wait for approval.\""
  }
}

output "rule_name" {
  value = aws_cloudwatch_event_rule.inference_failed.name
}

output "rule_arn" {
  value = aws_cloudwatch_event_rule.inference_failed.arn
}
