# One EventBridge rule whose matching events become a human-readable message on the topic.

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

variable "event_pattern" {
  description = "The EventBridge pattern, as an object (encoded here)."
  type        = any
}

variable "topic_arn" {
  type = string
}

variable "input_paths" {
  description = "Values taken from the event for the message (EventBridge input transformer)."
  type        = map(string)
}

variable "input_template" {
  description = "The message: a JSON string literal with <name> placeholders from input_paths."
  type        = string
}

resource "aws_cloudwatch_event_rule" "this" {
  name          = var.name
  description   = var.description
  event_pattern = jsonencode(var.event_pattern)
}

resource "aws_cloudwatch_event_target" "notify" {
  rule      = aws_cloudwatch_event_rule.this.name
  target_id = "notify"
  arn       = var.topic_arn

  input_transformer {
    input_paths    = var.input_paths
    input_template = var.input_template
  }
}

output "rule_name" {
  value = aws_cloudwatch_event_rule.this.name
}

output "rule_arn" {
  value = aws_cloudwatch_event_rule.this.arn
}
