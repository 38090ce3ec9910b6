"""The OpenAPI 3.1 document, generated: `spec` holds what each route declares beside its
handler (operation, parameters, request and response models), `document` walks the router
and builds the document from those declarations."""
