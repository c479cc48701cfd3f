"""Members, WeChat identities, legacy binding, points, tiers, coupons and orders."""
