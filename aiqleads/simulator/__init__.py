"""The traffic simulator: users with hidden preferences ask for leads and react to them.

`world` loads the users and leads of a synthetic data set, `scenarios` changes the
population part-way through a run, `traffic` sends the requests and the feedback.
"""
