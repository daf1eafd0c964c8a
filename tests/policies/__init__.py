"""Tests of edgefmp.policies."""
