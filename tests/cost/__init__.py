"""Tests of edgefmp."""
