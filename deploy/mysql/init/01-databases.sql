-- Run once by the mysql image on an empty data volume, after it has created the user
-- MYSQL_USER. Every service owns its own database.
CREATE DATABASE IF NOT EXISTS auth CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE DATABASE IF NOT EXISTS boards CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE DATABASE IF NOT EXISTS chat CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE DATABASE IF NOT EXISTS notify CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
GRANT ALL PRIVILEGES ON auth.* TO 'duochat'@'%';
GRANT ALL PRIVILEGES ON boards.* TO 'duochat'@'%';
GRANT ALL PRIVILEGES ON chat.* TO 'duochat'@'%';
GRANT ALL PRIVILEGES ON notify.* TO 'duochat'@'%';
