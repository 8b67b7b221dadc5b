"""The optional DICOM network link (pynetdicom), off by default; Qt-free.

HCC Response works offline. A site may configure ONE kind of peer: its PACS (or a DICOM router)
as a node with AE title, host and port (Settings → DICOM network). With the link turned on the
app can:

- verify the node (C-ECHO), query patients and studies (C-FIND),
- retrieve a study into the local import folder (C-GET on the same association, so nothing
  listens; or C-MOVE, which needs the storage SCP the user must turn on, bound to the configured
  address only and only while the retrieval runs),
- store the result objects back (C-STORE of the SR and captures from :mod:`app.export`).

The offline guard (:mod:`app.offline`) stays installed: each association opens a hole for
exactly the node's host and port while it lasts. Every association is logged (node, purpose,
outcome, duration). Bad network conditions become typed errors (:mod:`.errors`) with a sentence a
user can act on, and a retrieval that does not complete leaves nothing in the import folder.
"""
