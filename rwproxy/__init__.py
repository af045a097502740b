"""rwproxy: a read/write-splitting MySQL proxy.

Importing the package checks for the compiled hot path (``rwproxy.native``) before any hot module
is imported, and uses it only when it was built from exactly these sources.
"""

from rwproxy.native import install as _install_native

_install_native()
