"""The product's surfaces, built on the compiler and the runtime.

``sheets_addon.cli`` is the ``syncplan`` command line; the Google Sheets
backend, the Flask backend and the Apps Script add-on live here too. This is the
only package that imports both ``compiler`` and ``runtime``.
"""
