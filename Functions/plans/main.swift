import DravenCore
import DravenFunctions

CGI.serve(PlanAPI.self)
