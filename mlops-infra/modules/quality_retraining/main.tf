# Model quality against ground truth: when the model-quality pipeline finds a labelled batch below the
# version's baseline (its ModelQualityBelowThreshold step fails), start the train-with-HPO pipeline and
# tell the team; its version waits for the review board. A quality run that fails otherwise (labels that
# cannot be joined: unknown or repeated ids, labels outside {0,1}, a batch never scored) is told to the team
# with its reason and starts nothing.
#
# Both rules match SageMaker's "Model Building Pipeline Execution Step Status Change" events, whose detail
# names the step (stepName) and why it failed (failureReason)
# (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html).

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name_prefix" {
  type = string
}

variable "quality_pipeline_arn" {
  type = string
}

variable "hpo_pipeline_arn" {
  type = string
}

variable "events_role_arn" {
  type = string
}

variable "topic_arn" {
  type = string
}

locals {
  below_threshold = ["ModelQualityBelowThreshold"]
}

resource "aws_cloudwatch_event_rule" "quality_dropped" {
  name        = "${var.name_prefix}-hpo-on-quality-drop"
  description = "Model quality fell below the registered baseline on labelled data: start train-with-HPO and notify."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Step Status Change"]
    detail = {
      pipelineArn       = [var.quality_pipeline_arn]
      currentStepStatus = ["Failed"]
      stepName          = local.below_threshold
    }
  })
}

resource "aws_cloudwatch_event_target" "start_hpo" {
  rule      = aws_cloudwatch_event_rule.quality_dropped.name
  target_id = "start-hpo-pipeline"
  arn       = var.hpo_pipeline_arn
  role_arn  = var.events_role_arn
}

resource "aws_cloudwatch_event_target" "notify_hpo" {
  rule      = aws_cloudwatch_event_rule.quality_dropped.name
  target_id = "notify-quality-drop"
  arn       = var.topic_arn

  input_transformer {
    input_paths = {
      execution = "$.detail.pipelineExecutionArn"
      reason    = "$.detail.failureReason"
      time      = "$.time"
    }
    input_template = "\"Model quality run <execution> FAILED at <time>: <reason>. The train-with-HPO pipeline has been started; its version will wait for the review board.\""
  }
}

resource "aws_cloudwatch_event_rule" "quality_run_failed" {
  name        = "${var.name_prefix}-quality-run-failed"
  description = "A model-quality run failed for another reason (labels that cannot be joined): notify only."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Step Status Change"]
    detail = {
      pipelineArn       = [var.quality_pipeline_arn]
      currentStepStatus = ["Failed"]
      stepName          = [{ "anything-but" = local.below_threshold }]
    }
  })
}

resource "aws_cloudwatch_event_target" "notify_failure" {
  rule      = aws_cloudwatch_event_rule.quality_run_failed.name
  target_id = "notify-quality-run-failure"
  arn       = var.topic_arn

  input_transformer {
    input_paths = {
      execution = "$.detail.pipelineExecutionArn"
      step      = "$.detail.stepName"
      reason    = "$.detail.failureReason"
      time      = "$.time"
    }
    input_template = "\"Model quality run <execution> FAILED at <time> in step <step> (<reason>); no verdict was written and nothing was retrained.\""
  }
}

output "rule_arns" {
  value = [aws_cloudwatch_event_rule.quality_dropped.arn, aws_cloudwatch_event_rule.quality_run_failed.arn]
}
