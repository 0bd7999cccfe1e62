"""Feature keys: the tf.Example contract between ExampleGen, Transform, Trainer and serving.

ExampleGen writes one tf.Example per (user, lead, time) interaction or sampled negative,
with the raw features below (joined as of the event time, no future data). Transform
derives everything else inside the TF graph, so serving sends these raw keys only.
"""

from __future__ import annotations

# Identity and label.
USER_ID = "user_id"  # bytes
LEAD_ID = "lead_id"  # bytes
ENGAGEMENT = "engagement"  # int64: 0 sampled negative, 1 view, 2 click, 3 inquiry, 4 purchase
EVENT_TIMESTAMP = "event_timestamp"  # int64, seconds since the epoch (UTC)

# Lead side (from contracts.LEADS).
LEAD_LATITUDE = "lead_latitude"  # float
LEAD_LONGITUDE = "lead_longitude"  # float
REGION = "region"  # bytes
PROPERTY_TYPE = "property_type"  # bytes
PRICE = "price"  # float; missing when unknown
BEDROOMS = "bedrooms"  # int64; missing when unknown
BATHROOMS = "bathrooms"  # float; missing when unknown
LIVING_AREA = "living_area"  # float, m2; missing when unknown
LEAD_AGE_DAYS = "lead_age_days"  # float, days since listed_date at event time

# User side, aggregates over the user's events strictly before the event time.
USER_LATITUDE = "user_latitude"  # float: home if known, else activity centroid; missing if neither
USER_LONGITUDE = "user_longitude"  # float
USER_VIEWS = "user_views"  # int64
USER_CLICKS = "user_clicks"  # int64
USER_INQUIRIES = "user_inquiries"  # int64
USER_PURCHASES = "user_purchases"  # int64
USER_DAYS_SINCE_LAST = "user_days_since_last_event"  # float; missing for a first event
USER_MEDIAN_PRICE = "user_median_price"  # float: median price of leads engaged with; missing if none

# Market side: the region's latest market row on or before the event date.
MARKET_DEMAND = "market_demand"  # float
MARKET_MEDIAN_PRICE = "market_median_price"  # float
MARKET_INVENTORY = "market_inventory"  # float
MARKET_PRICE_TREND = "market_price_trend"  # float

# Slicing: the lead price relative to its regional median (ExampleGen writes it for TFMA).
PRICE_BAND = "price_band"  # bytes: below_market | at_market | above_market | unknown

ENGAGEMENT_LEVELS = {"negative": 0, "view": 1, "click": 2, "inquiry": 3, "purchase": 4}

# The `recommend` serving signature (retrieval then rank over the active catalogue).
RECOMMEND_SIGNATURE = "recommend"
RECOMMEND_INPUT_USER_ID = "user_id"  # tf.string [B]
RECOMMEND_INPUT_LATITUDE = "latitude"  # tf.float32 [B], NaN when unknown
RECOMMEND_INPUT_LONGITUDE = "longitude"  # tf.float32 [B], NaN when unknown
RECOMMEND_INPUT_K = "k"  # tf.int32 [B]; outputs have max(k) columns
RECOMMEND_OUTPUT_LEAD_IDS = "lead_ids"  # tf.string [B, K]
RECOMMEND_OUTPUT_SCORES = "scores"  # tf.float32 [B, K], descending per row
