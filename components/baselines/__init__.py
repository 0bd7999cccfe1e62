"""Classical baselines the model is compared with: regional popularity, item-item CF."""
