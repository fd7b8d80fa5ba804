"""Importing a CSV file of records: every good row stored, every bad one reported.

The modules in the order a file passes through them:

- `csv_import`: the entry (`import_csv`); picks the path a file takes and reads it;
- `csv_rows`: the file's header checked, its rows as raw records for the record
  parser, and a bad row's problems by line;
- `batch_lanes`: customers and spend files, and everything on SQLite, stored
  batch by batch on parallel connections while the file is read;
- orders files on PostgreSQL, stored at once when the file ends:
  - `copy_lines`: a row as a line of PostgreSQL's COPY text format;
  - `order_lanes`: the lines shared out over parallel connections, one share of
    customers each, merged side by side and committed;
  - `staging`: on each connection, the lines streamed by COPY into a temporary
    table and merged from it into the orders in a few set-based statements;
- `report`: what an import tells its caller, done (`ImportReport`) or failed
  (`ImportFailed`).
"""
