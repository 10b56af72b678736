# The notification topics, encrypted with their own customer-managed key. EventBridge and CloudWatch alarms
# can publish to an encrypted topic only when the key policy lets their service principal use the key: the
# AWS-managed alias/aws/sns key cannot be granted, and deliveries to a topic using it are dropped silently
# (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
# The environment's topic ("default") and the topics its notification rules add share the key; each
# topic's policy lets exactly the rules (and alarms) that target it publish.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name" {
  description = "Topic name; the key alias is alias/<name>."
  type        = string
}

variable "account_id" {
  description = "Account that owns the key and the topic."
  type        = string
}

variable "emails" {
  description = "Email addresses subscribed to the topic."
  type        = list(string)
  default     = []
}

variable "publisher_rule_arns" {
  description = "EventBridge rules allowed to publish to the topic."
  type        = list(string)
}

variable "alarm_arns" {
  description = "CloudWatch alarms allowed to publish to the environment's topic."
  type        = list(string)
  default     = []
}

variable "extra_topics" {
  description = "More topics by key: name, subscribed emails, the rules allowed to publish."
  type = map(object({
    name                = string
    emails              = list(string)
    publisher_rule_arns = list(string)
  }))
  default = {}
}

data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${var.account_id}:root"
}

data "aws_iam_policy_document" "key" {
  # A key policy is attached to its key, so "*" as the resource means only this key:
  #checkov:skip=CKV_AWS_109:resource "*" in a key policy is the key itself, not every resource
  #checkov:skip=CKV_AWS_111:resource "*" in a key policy is the key itself, not every resource
  #checkov:skip=CKV_AWS_356:resource "*" in a key policy is the key itself, not every resource
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" means this key
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  # EventBridge's KMS requests carry no aws:SourceArn/aws:SourceAccount to condition on: the topic policies
  # name the rules instead.
  statement {
    sid       = "EventBridgePublishesToTheEncryptedTopic"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"] # in a key policy "*" means this key
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = length(var.alarm_arns) > 0 ? [1] : []
    content {
      sid       = "AlarmsPublishToTheEncryptedTopic"
      actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
      resources = ["*"] # in a key policy "*" means this key
      principals {
        type        = "Service"
        identifiers = ["cloudwatch.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [var.account_id]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = var.alarm_arns
      }
    }
  }
}

resource "aws_kms_key" "topic" {
  description             = "Encrypts the ${var.name} SNS topic; EventBridge may use it to publish."
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "topic" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.topic.key_id
}

resource "aws_sns_topic" "this" {
  name              = var.name
  kms_master_key_id = aws_kms_key.topic.arn
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "AccountManagesTheTopic"
    actions   = ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish"]
    resources = [aws_sns_topic.this.arn]
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  statement {
    sid       = "ProjectRulesPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = var.publisher_rule_arns
    }
  }

  # The environment's alarms, and only those (confused-deputy guard: their ARNs and this account).
  dynamic "statement" {
    for_each = length(var.alarm_arns) > 0 ? [1] : []
    content {
      sid       = "ProjectAlarmsPublish"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.this.arn]
      principals {
        type        = "Service"
        identifiers = ["cloudwatch.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [var.account_id]
      }
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = var.alarm_arns
      }
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.emails)
  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic" "extra" {
  for_each          = var.extra_topics
  name              = each.value.name
  kms_master_key_id = aws_kms_key.topic.arn
}

data "aws_iam_policy_document" "extra" {
  for_each = var.extra_topics

  statement {
    sid       = "AccountManagesTheTopic"
    actions   = ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish"]
    resources = [aws_sns_topic.extra[each.key].arn]
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  statement {
    sid       = "ProjectRulesPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.extra[each.key].arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = each.value.publisher_rule_arns
    }
  }
}

resource "aws_sns_topic_policy" "extra" {
  for_each = var.extra_topics
  arn      = aws_sns_topic.extra[each.key].arn
  policy   = data.aws_iam_policy_document.extra[each.key].json
}

resource "aws_sns_topic_subscription" "extra_email" {
  for_each  = { for s in flatten([for k, t in var.extra_topics : [for e in t.emails : { key = "${k} ${e}", topic = k, email = e }]]) : s.key => s }
  topic_arn = aws_sns_topic.extra[each.value.topic].arn
  protocol  = "email"
  endpoint  = each.value.email
}

output "topic_arn" {
  value = aws_sns_topic.this.arn
}

output "extra_topic_arns" {
  value = { for k, t in aws_sns_topic.extra : k => t.arn }
}

output "key_arn" {
  value = aws_kms_key.topic.arn
}
