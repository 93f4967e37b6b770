"""Data access: the only package that knows table names, key shapes, item formats and boto3 calls (DynamoDB, S3,
KMS; the handlers' Powertools utilities and `jobs` sending to SQS aside).

Each concern has a small repository, bound to its boto3 client, table names and tenant, built once per container in
`profilevault.wiring` and carried in `Deps` (`deps.records.put_sealed(...)`). Logic above this package sees typed
objects (pydantic models, dataclasses), never `{"S": ...}`. Each module's docstring shows its API.

  module         repository            what
  sources        SourceRepository      source registrations
  ingestions     IngestionRepository   one item per landing file (domain.ingestions.Ingestion)
  records        RecordRepository      sealed records, their wrapped keys and blind-index entries
  changes        ChangeJournal         records written or deleted since the last unification run
  profiles       ProfileRepository     sealed profiles, the member map, suggestions
  rulesets       RuleSetRepository     the sealed unification rule set
  state          StateRepository       the sealed state of the last unification run (pointer + vault object)
  runs           RunRepository         runs, refreshes and purges (domain.runs.Run), status writes conditional
  keyring        KeyringRepository     the tenant keyring's control item (wrapped tenant keys)
  audit          AuditRepository       the audit chain, its head and the actor pseudonyms
                 AnchorStore           write-once copies of the chain head (S3 Object Lock)
  kms            TenantKms             the tenant's KMS calls, refusals mapped to KeyUnavailable
  objects        (functions)           S3: landing drops, sealed rejection reports, state objects
  sealed         -                     SealedDocument / SealedRecord / Address / IndexRef, and their items
  dynamo         -                     item conversion (TypeSerializer), paged queries, batch writes and reads
                                       with backoff, Tables

Key shapes (pk / sk; <t> tenant, <s> source, <token> blind index of a record ID, <kid> key ID of one sealing):

  ControlTable   TENANT#<t> / SOURCE#<s>                        source registration
                 TENANT#<t> / INGESTION#<id>                    ingestion; index BySource:
                                                                TENANT#<t>#INGESTIONS#<s> / <started_at>#<id>
                 TENANT#<t> / RUN#<id>                          run; index ByTime: TENANT#<t>#RUNS / <queued_at>#<id>
                 TENANT#<t> / KEYRING                           wrapped tenant data key and blind-index key
                 TENANT#<t> / UNIFICATION#RULES                 sealed rule set
                 TENANT#<t> / UNIFICATION#STATE                 pointer to the sealed unification state object
                 TENANT#<t>#CHANGES / C#<random>                change journal entry (source, tokens)
  RecordsTable   TENANT#<t>#SOURCE#<s> / REC#<token>            sealed record, ingestion_id, ingested_at, row_number,
                                                                kept_at, index_refs
  IndexTable     TENANT#<t>#IDX#<attr>#<hmac> / SOURCE#<s>#REC#<token>   blind-index entry (kid of its write)
  ProfilesTable  TENANT#<t>#PROFILES / P#<profile id>           sealed profile, digest, previous_ids
                 TENANT#<t>#MEMBERS / M#<s>#<token>             member map: record -> profile id
                 TENANT#<t>#SUGGESTIONS / S#<id a>#<id b>       a possible match for a data steward
  KeysTable      <pk of the sealed item> / <sk>#K#<kid>         the item's wrapped data key (crypto-shredding
                                                                deletes it)
  VaultBucket    rejections/<ingestion id>.jsonl                sealed rejection report (line by line)
                 unification/<t>/state-<kid>                    sealed unification state
  AuditTable     TENANT#<t>#AUDIT / E#<seq, 12 digits>          audit chain entry (surrogate IDs, counts, hashes)
                 TENANT#<t>#AUDIT / HEAD                        the chain's latest {seq, hash, at} (a hint)
                 TENANT#<t>#ACTORS / A#<hmac of sub>            a staff identity's pseudonym
  AuditAnchorBucket anchors/<seq, 12 digits>-<hash>.json        the chain head, write-once (Object Lock)

Nothing here holds a plaintext value of a row: record IDs appear only as blind tokens, personal data only sealed.
"""
