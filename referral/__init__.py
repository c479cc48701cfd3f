"""Referral campaigns, codes, edges, qualification, rewards and fraud defences."""
