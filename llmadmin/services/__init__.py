"""Business logic: plain functions with primitive arguments that validate, change state and commit.

Views, admin actions, the CLI and jobs all call these.
"""
