"""Legacy CRM import and binding of legacy members by verified phone."""
