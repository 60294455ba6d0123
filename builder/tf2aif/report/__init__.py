"""`tf2aif report`: bench results (and a build record) to PNG plots, Markdown and an HTML page."""

from tf2aif.report.render import render_report

__all__ = ["render_report"]
