# Retraining only when the model is stale: the inference step that fails on drift (DataDriftDetected, or
# any step named in stale_model_steps) starts the training pipeline and tells the team why a new model
# version is coming. Any other failure of inference (malformed batch, no approved model, an
# infrastructure error) is told to the team with its reason and starts nothing.
#
# Both rules match SageMaker's "Model Building Pipeline Execution Step Status Change" events, whose
# detail names the failed step (stepName) and why it failed (failureReason); the execution's own status
# event names neither (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html).

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

variable "stale_model_steps" {
  description = "Inference steps whose failure means the model is stale (retrain); any other failed step only notifies."
  type        = list(string)
  default     = ["DataDriftDetected"]
}

variable "failure_rule_name" {
  description = "Name of the rule that notifies the other inference failures."
  type        = string
}

resource "aws_cloudwatch_event_rule" "inference_failed" {
  name        = var.name
  description = "Inference failed because the model is stale (drift): start retraining and notify."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Step Status Change"]
    detail = {
      pipelineArn       = [var.inference_pipeline_arn]
      currentStepStatus = ["Failed"]
      stepName          = var.stale_model_steps
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
      step      = "$.detail.stepName"
      time      = "$.time"
    }
    input_template = "\"Inference pipeline <pipeline> FAILED at <time> (execution <execution>) because the model is stale (<step>): retraining has been started. A new model version will wait for approval.\""
  }
}

resource "aws_cloudwatch_event_rule" "inference_failed_otherwise" {
  name        = var.failure_rule_name
  description = "Inference failed for another reason (bad batch, no approved model, infrastructure): notify only."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Step Status Change"]
    detail = {
      pipelineArn       = [var.inference_pipeline_arn]
      currentStepStatus = ["Failed"]
      stepName          = [{ "anything-but" = var.stale_model_steps }]
    }
  })
}

resource "aws_cloudwatch_event_target" "notify_failure" {
  rule      = aws_cloudwatch_event_rule.inference_failed_otherwise.name
  target_id = "notify-inference-failure"
  arn       = var.topic_arn

  input_transformer {
    input_paths = {
      execution = "$.detail.pipelineExecutionArn"
      step      = "$.detail.stepName"
      reason    = "$.detail.failureReason"
      time      = "$.time"
    }
    input_template = "\"Inference run <execution> FAILED at <time> in step <step> (<reason>); no retraining was started, as the model is not known to be stale.\""
  }
}

output "rule_name" {
  value = aws_cloudwatch_event_rule.inference_failed.name
}

output "rule_arn" {
  value = aws_cloudwatch_event_rule.inference_failed.arn
}

output "failure_rule_arn" {
  value = aws_cloudwatch_event_rule.inference_failed_otherwise.arn
}
