"""Escaping of text placed into the XML we send back to WeChat (passive replies, encrypted envelopes)."""

from __future__ import annotations

import re

# Everything XML 1.0 cannot carry: C0 controls other than tab/LF/CR, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_xml_text(value: str) -> str:
    """Return ``value`` with characters XML cannot carry removed and line breaks normalised to ``\\n``.

    Any XML parser turns CR and CRLF into LF, even inside CDATA, so normalising here makes what we send equal
    to what the receiver reads.

    Raises:
        TypeError: ``value`` is not a str.
    """
    if not isinstance(value, str):
        raise TypeError("XML text must be a str")
    return _NOT_XML_CHAR.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def cdata(value: str) -> str:
    """Wrap ``value`` in CDATA so that no input can close the section and inject markup.

    ``]]>`` is split across two sections (``]]`` ends the first, ``>`` opens the second), which is the only
    sequence that could end a CDATA section early.
    """
    return "<![CDATA[" + clean_xml_text(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"
