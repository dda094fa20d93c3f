"""Names vulture cannot see used: set for a library to read, or called by a framework by name.

Each line says who reads it. Anything else vulture reports at 60 % confidence is dead code: delete
it (``make lint`` runs ``vulture``; its settings are in pyproject.toml).
"""

# ruff: noqa: B018, F821
_.disabled  # logging reads it (api/jsonlog.py silences uvicorn's access log)
expires_at  # response and column fields: read by clients and by SQL, not by Python
document_count  # api/schemas.py CollectionOut: a response field
document  # bunko/store/db.py: the SQLAlchemy relationship's back-reference
_.max_side_len  # rapidocr reads it (bench/ocr_settings.py)
_.embed_query  # LangChain's Embeddings interface calls it (bench/query.py)
_.pre_tokenizer  # tokenizers reads these (bunko/testing/tiny_models.py)
_.decoder
_.model_max_length  # transformers reads it
note  # operator/catalogue.py: a catalogue entry's note for the reader of the catalogue
_.finalizer  # kopf settings (operator/main.py), read by kopf
_.progress_storage
_.diffbase_storage
_.mandatory
_.clusterwide
_.max_workers
_.error_delays
ocr_app  # Ray Serve imports these by the path in the Serve config (serving/apps.py)
embed_app
rerank_app
llm_app
_.check_health  # Ray Serve calls it on every replica
_.max_length  # sentence-transformers' CrossEncoder reads it (serving/rerank.py)
target_ongoing_requests  # a Serve autoscaling field, written into the Serve config
protocol_version  # http.server reads these (tests' scripted HTTP servers)
_.log_message
_.do_GET
_.do_POST
_.close_connection
_.daemon_threads
pytestmark  # pytest reads it
_.ignore_aliases  # PyYAML's Dumper calls it (operator/kinds/crd.py)
_.effect  # Kubernetes reads these off the rendered tolerations (operator/kinds/pipeline.py Toleration)
_.toleration_seconds
_.bunko_version  # written to the backup's manifest.json through dataclasses.asdict (bunko/backup.py)
_.labels_to_ignore  # Presidio reads it off the NER configuration (bunko/pii/detect.py)
_.validate_result  # Presidio's PatternRecognizer calls it on each match (bunko/pii/recognizers.py)
