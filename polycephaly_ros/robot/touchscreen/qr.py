"""The pairing QR code: the matrix of a URI, and its drawing as text for a terminal.

A mobile device pairs with the robot by scanning the URL of the service's ``pair`` answer (the
web console's address with a one-time code, :mod:`.pairing`). :func:`qr_matrix` builds the
code with the ``qrcode`` package, imported on first use so that the touchscreen still runs
(showing the code as text) where it is missing; the Tk window draws the matrix on a canvas
(:mod:`.gui.pair`) and the headless touchscreen prints :func:`qr_text`. The quiet zone is the
standard 4 modules, which phone cameras and zbar need. Pure functions, safe from any thread.
"""

from __future__ import annotations


def qr_matrix(uri: str, border: int = 4) -> list[list[bool]]:
    """Return the QR code of uri as rows of dark (True) / light modules, quiet zone included."""
    import qrcode

    qr = qrcode.QRCode(border=border, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(uri)
    qr.make(fit=True)
    return qr.get_matrix()


def qr_text(matrix: list[list[bool]]) -> str:
    """Draw a QR matrix with half-block characters, two rows per line.

    Light modules are drawn as blocks, so the code reads right on a terminal with a dark
    background (light text).
    """
    blocks = {(True, True): '\u2588', (True, False): '\u2580', (False, True): '\u2584',
              (False, False): ' '}
    rows = []
    for y in range(0, len(matrix), 2):
        top = matrix[y]
        bottom = matrix[y + 1] if y + 1 < len(matrix) else [False] * len(top)
        rows.append(''.join(blocks[(not t, not b)] for t, b in zip(top, bottom)))
    return '\n'.join(rows)
