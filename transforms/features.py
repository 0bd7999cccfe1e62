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
USER_MEDIAN_PRICE = (
    "user_median_price"  # float: median price of leads engaged with; missing if none
)

# User x lead: the user's own history with this lead, strictly before the event time.
USER_LEAD_EVENTS = "user_lead_events"  # float: engagement-weighted count (view 1 ... purchase 8)
# User x property type: the share of the user's engagement-weighted events strictly before the
# event time that were on leads of this lead's property type.
USER_TYPE_SHARE = "user_type_share"  # float in [0, 1]; missing when the user has no history
# User x region: the same share on leads of this lead's region.
USER_REGION_SHARE = "user_region_share"  # float in [0, 1]; missing when the user has no history
USER_SHARES = {USER_TYPE_SHARE: PROPERTY_TYPE, USER_REGION_SHARE: REGION}
"""Each user share feature and the lead column whose value it is the share of."""
# How much one event of each type counts, in these features and in the popularity prior.
EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "inquiry": 4.0, "purchase": 8.0}

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
# What the answer showed, per column: the raw lead features the drift and skew checks
# compare, so that an impression record carries them (feature key -> output name).
RECOMMEND_OUTPUT_FEATURES = {
    REGION: "regions",  # tf.string [B, K]
    PROPERTY_TYPE: "property_types",  # tf.string [B, K]
    PRICE: "prices",  # tf.float32 [B, K], NaN when unknown
    LEAD_LATITUDE: "lead_latitudes",  # tf.float32 [B, K]
    LEAD_LONGITUDE: "lead_longitudes",  # tf.float32 [B, K]
}

# The `recommend_online` signature: `recommend`'s four inputs plus what the online feature
# store holds now (docs/feature_store.md): the request user's features (overriding the
# snapshot the model embeds) and the leads no answer may hold (sold, pending, withdrawn).
RECOMMEND_ONLINE_SIGNATURE = "recommend_online"
ONLINE_USER = "online_user"  # tf.float32 [B, len(ONLINE_USER_FEATURES)]; NaN: the snapshot's
ONLINE_USER_FEATURES = (
    USER_VIEWS,
    USER_CLICKS,
    USER_INQUIRIES,
    USER_PURCHASES,
    USER_DAYS_SINCE_LAST,
    USER_MEDIAN_PRICE,
    USER_LATITUDE,
    USER_LONGITUDE,
)
ONLINE_USER_COUNTS = ONLINE_USER_FEATURES[:4]  # a user with any is ranked by the model
ONLINE_SHARE_KEYS = "online_share_keys"  # tf.string [B, S]: "<share feature>=<group>"; "" pads
ONLINE_SHARE_VALUES = "online_share_values"  # tf.float32 [B, S]
ONLINE_LEAD_IDS = "online_lead_ids"  # tf.string [B, H]; "" pads
ONLINE_LEAD_EVENTS = "online_lead_events"  # tf.float32 [B, H]: USER_LEAD_EVENTS per lead
EXCLUDED_LEAD_IDS = "excluded_lead_ids"  # tf.string [B, E]: never in the answer; "" pads
SHARE_KEY_SEPARATOR = "="
RECOMMEND_ONLINE_INPUTS = (
    ONLINE_USER,
    ONLINE_SHARE_KEYS,
    ONLINE_SHARE_VALUES,
    ONLINE_LEAD_IDS,
    ONLINE_LEAD_EVENTS,
    EXCLUDED_LEAD_IDS,
)
"""`recommend_online`'s inputs besides `recommend`'s; a row with all of them empty (NaN,
no keys) is answered exactly as `recommend` answers it."""
# The `feature_views` signature: the feature view versions the model was trained on and the
# leads it ranks, for the gateway (input ignored).
FEATURE_VIEWS_SIGNATURE = "feature_views"
FEATURE_VIEWS_INPUT = "model"  # tf.string [B], ignored
FEATURE_VIEWS_OUTPUT_NAMES = "views"  # tf.string [V]
FEATURE_VIEWS_OUTPUT_VERSIONS = "versions"  # tf.int64 [V]
FEATURE_VIEWS_OUTPUT_CATALOGUE = "catalogue_lead_ids"  # tf.string [N]

# ---------------------------------------------------------------------------------------
# Transformed features (written by `transforms.preprocessing.preprocessing_fn`, read by the
# Trainer). Every one is a dense scalar per example: int64 for ids/buckets, float32 else.

# Ids and categories (vocabulary indices with one OOV bucket; hashed geo cells).
T_USER_INDEX = "user_index"
T_LEAD_INDEX = "lead_index"
T_REGION_INDEX = "region_index"
T_PROPERTY_TYPE_INDEX = "property_type_index"
T_FINE_CELL = "fine_cell_bucket"
T_COARSE_CELL = "coarse_cell_bucket"
T_CELL_X_TYPE = "fine_cell_x_property_type_bucket"

# Lead side (numbers are z-scores over present values unless named otherwise).
T_LOG_PRICE = "log_price_z"
T_PRICE_MISSING = "price_missing"  # 0/1
T_PRICE_VS_MARKET = "log_price_vs_market"  # log(price / regional median), clipped to +-3
T_BEDROOMS = "bedrooms_z"
T_BATHROOMS = "bathrooms_z"
T_LOG_LIVING_AREA = "log_living_area_z"
T_LOG_LEAD_AGE = "log_lead_age_z"
T_LOG_MARKET_DEMAND = "log_market_demand_z"
T_LOG_MARKET_INVENTORY = "log_market_inventory_z"
T_MARKET_TREND = "market_price_trend_clipped"
T_HOTSPOT_DISTANCE = "log_hotspot_distance_km"  # log1p km to the nearest learned hotspot
T_CELL_DENSITY = "log_cell_density"  # log1p distinct leads in the fine cell

# User side.
T_USER_LOG_VIEWS = "user_log_views_z"
T_USER_LOG_CLICKS = "user_log_clicks_z"
T_USER_LOG_INQUIRIES = "user_log_inquiries_z"
T_USER_LOG_PURCHASES = "user_log_purchases_z"
T_USER_LOG_RECENCY = "user_log_recency_z"
T_USER_RECENCY_MISSING = "user_recency_missing"
T_USER_LOG_MEDIAN_PRICE = "user_log_median_price_z"
T_USER_PRICE_MISSING = "user_median_price_missing"

# Crosses between the user and the lead.
T_DISTANCE = "log_user_lead_distance_km"  # log1p km, 0 when the user location is unknown
T_USER_LOCATION_MISSING = "user_location_missing"
T_PRICE_FIT = "price_fit"  # |log price - log user median price|, 0 when unknown
T_USER_LEAD_HISTORY = "log_user_lead_events"  # log1p of USER_LEAD_EVENTS, 0 when none
T_USER_TYPE_SHARE = "user_lead_type_share"  # USER_TYPE_SHARE, 0 when missing
T_USER_REGION_SHARE = "user_lead_region_share"  # USER_REGION_SHARE, 0 when missing

# Training targets (absent at serving time).
T_LABEL = "label"  # 1.0 engaged, 0.0 sampled negative
T_WEIGHT = "example_weight"  # engagement weight of the example

T_ID_FEATURES = (T_USER_INDEX, T_LEAD_INDEX, T_REGION_INDEX, T_PROPERTY_TYPE_INDEX)
T_BUCKET_FEATURES = (T_FINE_CELL, T_COARSE_CELL, T_CELL_X_TYPE)
T_USER_NUMERIC = (
    T_USER_LOG_VIEWS,
    T_USER_LOG_CLICKS,
    T_USER_LOG_INQUIRIES,
    T_USER_LOG_PURCHASES,
    T_USER_LOG_RECENCY,
    T_USER_RECENCY_MISSING,
    T_USER_LOG_MEDIAN_PRICE,
    T_USER_PRICE_MISSING,
)
T_LEAD_NUMERIC = (
    T_LOG_PRICE,
    T_PRICE_MISSING,
    T_PRICE_VS_MARKET,
    T_BEDROOMS,
    T_BATHROOMS,
    T_LOG_LIVING_AREA,
    T_LOG_LEAD_AGE,
    T_LOG_MARKET_DEMAND,
    T_LOG_MARKET_INVENTORY,
    T_MARKET_TREND,
    T_HOTSPOT_DISTANCE,
    T_CELL_DENSITY,
)
T_CROSS_NUMERIC = (
    T_DISTANCE,
    T_USER_LOCATION_MISSING,
    T_PRICE_FIT,
    T_USER_LEAD_HISTORY,
    T_USER_TYPE_SHARE,
    T_USER_REGION_SHARE,
)
