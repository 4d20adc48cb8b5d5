"""Maps read off a network without optimising an image: activations (tiled for large photos), channel
views, filters, embeddings and atlases."""
