CREATE TABLE files (id INTEGER PRIMARY KEY, file_path TEXT NOT NULL, size TEXT);
CREATE INDEX files_by_path ON files(file_path);
