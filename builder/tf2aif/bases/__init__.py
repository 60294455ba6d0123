"""Base image folders and local stand-ins for vendor images."""
