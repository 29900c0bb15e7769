"""Read a REST API declared in the spec (kind ``http``), one stream at a time.

``read(system, stream, context)`` follows the reader contract of
``runtime.sources.base``. Settings, from ``system.settings``:

``base_url``
    The API root, such as ``https://api.hubapi.com``. Every request goes to
    its origin (scheme, host and port). A next-page URL or a redirect to
    another origin is rejected, and nothing is sent there.
``timeout``
    Seconds, for connecting and for reading each response, or
    ``{connect: S, read: S}``. Default ``(10, 60)``. Every request has one,
    token requests included.
``streams``
    ``{name: stream}``, where a stream has:

    ``path``
        Appended to ``base_url`` (``/crm/v3/objects/deals``). May contain
        references such as ``${env:JIRA_CLOUD_ID}``.
    ``method``
        ``GET`` (default) or ``POST`` for search endpoints, which are read-only
        and resent like a GET after a failure.
    ``query``, ``headers``, ``body``
        Query parameters, request headers and the JSON body of a POST. String
        values may contain references, resolved just before the read.
    ``records``
        Selector of the list of records in each page, a dotted path
        (``data.items``) or a JSONPath (``$.data[*]``); see
        ``runtime.sources.http.selectors``. Empty (the default) means the
        page body itself is the list. A null value is an empty page.
    ``pagination``
        See ``runtime.sources.http.pagination``.
    ``cursor``
        ``{field, param, in, format, initial}``; see
        ``runtime.sources.http.cursor``.
    ``fields``
        ``{path: type}`` or ``{path: {type: T, optional: true}}``. The compiler
        type-checks mappings against these; the reader reports a declared
        field that is not optional and is missing from records.

``system.auth`` contains the credentials (see ``runtime.sources.http.auth``)
and ``system.rate_limit`` the request budget: one ``TokenBucket`` per system
and limits, shared by every read in the process.

Options read from ``context.options``:

``cursor``
    The cursor stored after the last successful run, a string, or None.
``cursor_field``
    A selector of the cursor field, used when the stream declares no
    ``cursor`` (the flow's ``source.cursor``).
``http_session``, ``http_retry_policy``, ``http_sleep``, ``http_clock``,
``http_buckets``
    A ``requests.Session`` to send with (one is made and closed otherwise),
    the ``RetryPolicy`` (the runner passes the flow's ``on_error.retry``;
    ``RetryPolicy()`` when absent), the sleep function of back-off, the
    monotonic clock of token expiry, and a ``BucketRegistry`` (the process's
    shared one when absent).

Options written:

``cursor_out["value"]``
    Set, when the stream was read to its end, to the highest cursor value
    seen if it is above the stored cursor. The runner stores it only after
    every destination committed. A stream that stopped early leaves it unset,
    so records beyond the stop are read again next time.
``context.incomplete``
    Appended with the reason when a stream stopped early, so that the runner
    deletes nothing for this run (mirror) and keeps the stored records.
``warnings``
    A list, appended with ``"source changed shape: ..."`` when a response is
    not what the stream expects, and with a message when a stream stopped
    early.

Each record is ``SourceRecord(data=<the JSON object>,
position="<stream> page N item M")``. Numbers stay exact: decimals are parsed as
``decimal.Decimal`` and integers as ``int``. Error records (``SourceError``),
after which reading goes on where it can:

``http_not_json`` / ``http_invalid_json``
    A page is an HTML page, empty, or not valid JSON. The stream stops.
``http_records_selector``
    ``records`` finds nothing, or no list, in a page; the message says what
    the page contains instead. Cursor and next-URL pagination go on.
``http_record_not_object``
    An item of the records list is not an object.
``http_field_missing``
    A declared field is missing from some or all records of a page; the
    records are still yielded.
``http_pagination_loop``
    A next token or URL came back a second time, or a counted page repeated
    the previous one. The stream stops.
``http_foreign_url``
    A next-page URL or a redirect leads to another origin. The stream stops.
``http_pagination``
    The next token or URL has an unusable value. The stream stops.
``http_request``
    A page after the first could not be fetched (retries exhausted, a status
    outside 2xx). The stream stops.

``SourceUnavailable`` is raised when nothing can be read: an invalid setting,
an unresolvable reference, credentials that cannot be obtained, or a first
page that fails. 429 and 5xx responses and transport errors are retried by
``runtime.http.send``; a 401 gets one token refresh (OAuth2) and the same
request once more.
"""

from runtime.sources.http.reader import read

__all__ = ["read"]
