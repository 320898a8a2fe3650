"""The codec seam between the store's mapper and the protection codecs: the models layer's
public codec protocol (:mod:`tor_async_couchdb._models._codecs`), re-exported for this package.

Encode order in the mapper: field codecs (in list order), then document codecs; decode: document
codecs (in reverse order), then field codecs.
"""

from .._models import DocumentCodec, DocumentContext, FieldCodec, FieldContext

__all__ = ["DocumentCodec", "DocumentContext", "FieldCodec", "FieldContext"]
