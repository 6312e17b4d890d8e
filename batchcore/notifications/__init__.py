"""Status-change notifications: signed webhooks from a transactional outbox (issue 15)."""
