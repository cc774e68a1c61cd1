"""Crash-safe MCAP episode recorder, conversion to the cdp_core episode dataset, and replay."""
