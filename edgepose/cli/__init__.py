"""Command-line entry points (``edgepose``, ``edgepose-train``, ``edgepose-bench``)."""
