"""HTTP routes, one router per module."""
