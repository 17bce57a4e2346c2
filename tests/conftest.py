"""Shared test configuration: helpers live in wukong.testing so users' tests can import them too.

`from wukong.testing.eventually import eventually` polls a condition with a deadline; tests
never sleep-wait.
"""
