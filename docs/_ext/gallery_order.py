"""The order of the examples in the gallery: first steps first."""

ORDER = [
    "plot_quick_start.py",
    "plot_laepca_vs_pca.py",
    "plot_six_methods.py",
    "plot_streaming.py",
    "plot_threads.py",
    "plot_backend.py",
]


class ExampleOrder:
    """sphinx-gallery's within_subsection_order: a sort key by ORDER, then
    by file name for examples not listed."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        rank = ORDER.index(filename) if filename in ORDER else len(ORDER)
        return (rank, filename)

    def __repr__(self):
        return f"<{self.__class__.__name__}>"
