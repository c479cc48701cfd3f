"""The single error the callback core raises: a refusal that maps to a 4xx response."""

from __future__ import annotations

from types import MappingProxyType

#: Every refusal the callback core can make: code -> (HTTP status, safe message).
#: Messages are fixed strings on purpose, so nothing from the body, the query, a key or a token can leak
#: into a response or a log line through them.
REJECTIONS: MappingProxyType[str, tuple[int, str]] = MappingProxyType(
    {
        # Transport and size, checked before anything is parsed.
        "unsupported_media_type": (415, "The content type must be text/xml or application/xml."),
        "body_too_large": (413, "The request body is too large."),
        "nul_byte": (400, "The body contains a NUL byte."),
        "invalid_utf8": (400, "The body is not valid UTF-8."),
        "doctype_forbidden": (400, "Document type and entity declarations are not accepted."),
        "processing_instruction_forbidden": (400, "Processing instructions are not accepted."),
        "namespace_forbidden": (400, "XML namespaces and XInclude are not accepted."),
        # Authentication of the query string.
        "missing_parameter": (401, "A required signature parameter is missing."),
        "bad_parameter": (400, "A query parameter is malformed."),
        "bad_timestamp": (401, "The timestamp is not an integer."),
        "stale_timestamp": (401, "The timestamp is outside the accepted window."),
        "bad_signature": (401, "The signature does not match."),
        "replayed_query": (401, "This signed query was already used with another body."),
        # Safe and compatible mode envelope.
        "missing_encrypt": (401, "The body carries no encrypted message."),
        "bad_msg_signature": (403, "The message signature does not match."),
        "bad_ciphertext": (400, "The encrypted message cannot be decrypted."),
        "appid_mismatch": (403, "The encrypted message belongs to another app."),
        # Structure and content of the XML.
        "malformed_xml": (400, "The body is not well-formed callback XML."),
        "xml_too_deep": (400, "The XML is nested too deeply."),
        "too_many_elements": (400, "The XML has too many elements."),
        "duplicate_element": (400, "The XML repeats a top-level element."),
        "invalid_message": (400, "The message lacks a required field or has an invalid value."),
        "to_user_mismatch": (403, "The message is addressed to another account."),
    }
)


class CallbackRejected(Exception):
    """A WeChat callback request was refused; the view answers with ``status`` and no body detail.

    Attributes:
        code: Short snake_case reason, one of ``REJECTIONS``; safe to log and to return.
        status: The HTTP status to answer with (400, 401, 403, 413 or 415).
        message: A fixed human-readable sentence for ``code``; never contains request data.
    """

    def __init__(self, code: str) -> None:
        status, message = REJECTIONS[code]
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
