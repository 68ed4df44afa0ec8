"""The book's interactive explorers: one module per explorer, all on one base class (:mod:`.base`)."""

from .base import MAX_EXPLORER_T, MAX_KEPT_STATES, Explorer
from .forward import ForwardChainViewer, ScheduleExplorer, forward_chain_viewer, schedule_explorer, schedule_explorer_html
from .posterior import PosteriorExplorer, PosteriorHistogram, posterior_explorer, posterior_histogram
from .reverse_chain import ReverseChainViewer, record_reverse_chain, reverse_chain_viewer

__all__ = ["Explorer", "MAX_EXPLORER_T", "MAX_KEPT_STATES", "ScheduleExplorer", "schedule_explorer",
           "ForwardChainViewer", "forward_chain_viewer", "schedule_explorer_html", "PosteriorExplorer",
           "posterior_explorer", "PosteriorHistogram", "posterior_histogram", "ReverseChainViewer",
           "record_reverse_chain", "reverse_chain_viewer"]
