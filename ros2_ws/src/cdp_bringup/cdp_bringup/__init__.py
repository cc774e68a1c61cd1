"""Bringup of the CDP stack: node graph, launchers, episode runner."""
