import DravenCore
import DravenFunctions

CGI.serve(Rollback.self)
