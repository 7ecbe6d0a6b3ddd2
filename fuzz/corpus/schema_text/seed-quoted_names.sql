CREATE TABLE "order" ("id" INTEGER PRIMARY KEY, "group" TEXT, [x y] REAL, `Name` BLOB);
CREATE VIEW "v w"(a, b) AS SELECT id, "group" FROM "order" WHERE id > 0;
