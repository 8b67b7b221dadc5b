"""The desktop application (PySide6 + pyqtgraph). The only package that imports Qt."""
