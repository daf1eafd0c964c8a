"""Test suite of edgefmp."""
