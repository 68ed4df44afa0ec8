"""The book's interactive explorers (ipywidgets), one module per explorer on one base class."""

from .forward import ForwardChainViewer, ScheduleExplorer, forward_chain_viewer, schedule_explorer, schedule_explorer_html
from .posterior import posterior_explorer, posterior_histogram
from .reverse_chain import ReverseChainViewer, record_reverse_chain, reverse_chain_viewer

__all__ = ["ScheduleExplorer", "schedule_explorer", "ForwardChainViewer", "forward_chain_viewer",
           "schedule_explorer_html", "posterior_explorer", "posterior_histogram", "ReverseChainViewer",
           "record_reverse_chain", "reverse_chain_viewer"]
