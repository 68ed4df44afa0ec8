"""The teaching layer of *Diffusion, Derived*: what the chapters import, on top of the library.

* :mod:`~ddpm_lite.book.symbolic` — the sympy steps the chapters display and the tests assert;
* :mod:`~ddpm_lite.book.exact` — linear-Gaussian chains where the bound and the likelihood are exact;
* :mod:`~ddpm_lite.book.experiments` — the controlled experiments of the practice chapters;
* :mod:`~ddpm_lite.book.plotting` — the figures;
* :mod:`~ddpm_lite.book.widgets` — the interactive explorers, one base class.

It needs the ``book`` extra (sympy, matplotlib, ipywidgets): ``pip install "ddpm_lite[book]"``.
The library (:mod:`ddpm_lite`) never imports this package.
"""
