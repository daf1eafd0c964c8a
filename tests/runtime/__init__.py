"""Tests of edgefmp.runtime."""
