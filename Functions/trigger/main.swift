import DravenCore
import DravenFunctions

CGI.serve(Trigger.self)
