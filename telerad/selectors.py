"""Reads of the tele-reading domain."""
