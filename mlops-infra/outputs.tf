output "topic_arn" {
  description = "SNS topic that receives failure and approval notifications."
  value       = module.notifications.topic_arn
}

output "topic_key_arn" {
  description = "Customer-managed KMS key encrypting the topic."
  value       = module.notifications.key_arn
}

output "rule_names" {
  description = "EventBridge rules this configuration manages."
  value = {
    inference_schedule = module.inference_schedule.rule_name
    retraining         = module.retraining.rule_name
    train_failed       = module.train_failed.rule_name
    approval_pending   = module.approval_pending.rule_name
  }
}
